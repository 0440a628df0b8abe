"""Stand-in of modules/safe.py (docs/webui-contract.md §9): A1111's restricted unpickler that replaces ``torch.load`` process-wide.

The real module patches ``torch.load = safe.load`` on import (via modules/paths.py); the stand-in does it only in
``install()`` (the fixture's ``webui.patch_torch_load()``), and ``uninstall()`` undoes it. F: the patch line is
commented out, so ``install()`` does nothing under Forge.

``load(filename, ...)``: unless ``--disable-safe-unpickle``, replays the checkpoint's pickle through
``RestrictedUnpickler`` first; a rejected file is reported and ``None`` is returned (no exception).
"""

from __future__ import annotations

import collections
import pickle
import re
import zipfile

from modules import _stub, errors

unsafe_torch_load = None
global_extra_handler = None


def encode(*args):
    import _codecs

    return _codecs.encode(*args)


class RestrictedUnpickler(pickle.Unpickler):
    extra_handler = None

    def persistent_load(self, saved_id):
        import torch

        assert saved_id[0] == "storage"
        try:
            return torch.storage.TypedStorage(_internal=True)
        except TypeError:
            return torch.storage.TypedStorage()

    def find_class(self, module, name):
        import numpy
        import torch

        if self.extra_handler is not None:
            res = self.extra_handler(module, name)
            if res is not None:
                return res
        if module == "collections" and name == "OrderedDict":
            return getattr(collections, name)
        if module == "torch._utils" and name in [
            "_rebuild_tensor_v2",
            "_rebuild_parameter",
            "_rebuild_device_tensor_from_numpy",
        ]:
            return getattr(torch._utils, name)
        if module == "torch" and name in [
            "FloatStorage",
            "HalfStorage",
            "IntStorage",
            "LongStorage",
            "DoubleStorage",
            "ByteStorage",
            "float32",
            "BFloat16Storage",
        ]:
            return getattr(torch, name)
        if module == "torch.nn.modules.container" and name in ["ParameterDict"]:
            return getattr(torch.nn.modules.container, name)
        if module == "numpy.core.multiarray" and name in ["scalar", "_reconstruct"]:
            return getattr(numpy.core.multiarray, name)
        if module == "numpy" and name in ["dtype", "ndarray"]:
            return getattr(numpy, name)
        if module == "_codecs" and name == "encode":
            return encode
        if module == "__builtin__" and name == "set":
            return set
        # Forbid everything else.
        raise Exception(f"global '{module}/{name}' is forbidden")


# 'dirname/version', 'dirname/byteorder', 'dirname/data.pkl', '.data/serialization_id', 'dirname/data/<number>'
allowed_zip_names_re = re.compile(r"^([^/]+)/((data/\d+)|version|byteorder|.data/serialization_id|(data\.pkl))$")
data_pkl_re = re.compile(r"^([^/]+)/data\.pkl$")


def check_zip_filenames(filename, names):
    for name in names:
        if allowed_zip_names_re.match(name):
            continue
        raise Exception(f"bad file inside {filename}: {name}")


def check_pt(filename, extra_handler):
    try:
        # new pytorch format is a zip file
        with zipfile.ZipFile(filename) as z:
            check_zip_filenames(filename, z.namelist())
            data_pkl_filenames = [f for f in z.namelist() if data_pkl_re.match(f)]
            if len(data_pkl_filenames) == 0:
                raise Exception(f"data.pkl not found in {filename}")
            if len(data_pkl_filenames) > 1:
                raise Exception(f"Multiple data.pkl found in {filename}")
            with z.open(data_pkl_filenames[0]) as file:
                unpickler = RestrictedUnpickler(file)
                unpickler.extra_handler = extra_handler
                unpickler.load()
    except zipfile.BadZipfile:
        # if it's not a zip file, it's an old pytorch format, with five objects written to pickle
        with open(filename, "rb") as file:
            unpickler = RestrictedUnpickler(file)
            unpickler.extra_handler = extra_handler
            for _ in range(5):
                unpickler.load()


def load(filename, *args, **kwargs):
    return load_with_extra(filename, *args, extra_handler=global_extra_handler, **kwargs)


def load_with_extra(filename, extra_handler=None, *args, **kwargs):
    """Check the pickle with the restricted unpickler, then call the real ``torch.load``; ``None`` if rejected."""
    from modules import shared

    try:
        if not shared.cmd_opts.disable_safe_unpickle:
            check_pt(filename, extra_handler)
    except pickle.UnpicklingError:
        errors.report(
            f"Error verifying pickled file from {filename}\n"
            "-----> !!!! The file is most likely corrupted !!!! <-----\n"
            "You can skip this check with --disable-safe-unpickle commandline argument, but that is not going to "
            "help you.\n\n",
            exc_info=True,
        )
        return None
    except Exception:
        errors.report(
            f"Error verifying pickled file from {filename}\n"
            "The file may be malicious, so the program is not going to read it.\n"
            "You can skip this check with --disable-safe-unpickle commandline argument.\n\n",
            exc_info=True,
        )
        return None
    return unsafe_torch_load(filename, *args, **kwargs)


class Extra:
    """``with safe.Extra(handler): torch.load(...)`` lets ``handler(module, name)`` allow more globals."""

    def __init__(self, handler):
        self.handler = handler

    def __enter__(self):
        global global_extra_handler
        assert global_extra_handler is None, "already inside an Extra() block"
        global_extra_handler = self.handler

    def __exit__(self, exc_type, exc_val, exc_tb):
        global global_extra_handler
        global_extra_handler = None


def install() -> bool:
    """Stand-in only: ``torch.load = safe.load`` as A1111 does at startup (no-op under Forge). True if patched."""
    global unsafe_torch_load
    import torch

    if _stub.is_forge() or unsafe_torch_load is not None:
        return False
    unsafe_torch_load = torch.load
    torch.load = load
    return True


def uninstall() -> None:
    """Stand-in only: restore the real ``torch.load``."""
    global unsafe_torch_load
    if unsafe_torch_load is None:
        return
    import torch

    torch.load = unsafe_torch_load
    unsafe_torch_load = None
