"""Stand-in of modules/images.py: ``save_image`` (docs/webui-contract.md §5, images.py:624), ``image_grid``, ``read_info_from_image``.

``save_image`` follows the real one: filename from ``opts.samples_filename_pattern``/``FilenameGenerator`` (a subset
of the tags), subfolder from ``opts.directories_filename_pattern`` when ``save_to_dirs``, sequence numbers,
``on_before_image_saved`` callbacks, infotext in the PNG ``parameters`` chunk (EXIF UserComment for jpg/webp) when
``opts.enable_pnginfo``, atomic write, ``image.already_saved_as``, ``.txt`` when ``opts.save_txt``.
Stand-in only: ``saved`` records ``(fullfn, info)`` of every saved file.
"""

from __future__ import annotations

import datetime
import math
import os
import re
import string

from PIL import Image, PngImagePlugin

from modules import errors, script_callbacks, shared
from modules.shared import opts

saved: list[tuple[str, str | None]] = []

invalid_filename_chars = '#<>:"/\\|?*\n\r\t'
invalid_filename_prefix = " "
invalid_filename_postfix = " ."
re_nonletters = re.compile(r"[\s" + string.punctuation + "]+")
re_pattern = re.compile(r"(.*?)(?:\[([^\[\]]+)\]|$)")
re_pattern_arg = re.compile(r"(.*)<([^>]*)>$")
max_filename_part_length = 128
NOTHING_AND_SKIP_PREVIOUS_TEXT = object()


def sanitize_filename_part(text, replace_spaces=True):
    if text is None:
        return None
    if replace_spaces:
        text = text.replace(" ", "_")
    text = text.translate({ord(x): "_" for x in invalid_filename_chars})
    text = text.lstrip(invalid_filename_prefix)[:max_filename_part_length]
    text = text.rstrip(invalid_filename_postfix)
    return text


class FilenameGenerator:
    """``[tag]`` replacement for file and folder names. Tags touching ``p`` fail (reported) when p is None."""

    replacements = {
        "seed": lambda self: self.seed if self.seed is not None else "",
        "steps": lambda self: self.p and self.p.steps,
        "cfg": lambda self: self.p and self.p.cfg_scale,
        "width": lambda self: self.image.width,
        "height": lambda self: self.image.height,
        "sampler": lambda self: self.p and sanitize_filename_part(self.p.sampler_name, replace_spaces=False),
        "scheduler": lambda self: self.p and sanitize_filename_part(self.p.scheduler, replace_spaces=False),
        "model_hash": lambda self: getattr(shared.sd_model, "sd_model_hash", None),
        "model_name": lambda self: sanitize_filename_part(
            getattr(getattr(shared.sd_model, "sd_checkpoint_info", None), "name_for_extra", None), replace_spaces=False
        ),
        "date": lambda self: datetime.datetime.now().strftime("%Y-%m-%d"),
        "datetime": lambda self: datetime.datetime.now().strftime("%Y%m%d%H%M%S"),
        "job_timestamp": lambda self: getattr(self.p, "job_timestamp", shared.state.job_timestamp),
        "prompt": lambda self: sanitize_filename_part(self.prompt),
        "prompt_spaces": lambda self: sanitize_filename_part(self.prompt, replace_spaces=False),
        "prompt_words": lambda self: self.prompt_words(),
        "batch_number": lambda self: (
            NOTHING_AND_SKIP_PREVIOUS_TEXT if self.p.batch_size == 1 else self.p.batch_index + 1
        ),
        "none": lambda self: "",
    }

    def __init__(self, p, seed, prompt, image, zip=False, basename=""):
        self.p = p
        self.seed = seed
        self.prompt = prompt
        self.image = image
        self.zip = zip
        self.basename = basename

    def prompt_words(self):
        words = [x for x in re_nonletters.split(self.prompt or "") if x]
        if len(words) == 0:
            words = ["empty"]
        return sanitize_filename_part(" ".join(words[0 : opts.directories_max_prompt_words]), replace_spaces=False)

    def apply(self, x):
        res = ""
        for m in re_pattern.finditer(x):
            text, pattern = m.groups()
            if pattern is None:
                res += text
                continue
            pattern_args = []
            while True:
                m = re_pattern_arg.match(pattern)
                if m is None:
                    break
                pattern, arg = m.groups()
                pattern_args.insert(0, arg)
            fun = self.replacements.get(pattern.lower())
            if fun is not None:
                try:
                    replacement = fun(self, *pattern_args)
                except Exception:
                    replacement = None
                    errors.report(f"Error adding [{pattern}] to filename", exc_info=True)
                if replacement == NOTHING_AND_SKIP_PREVIOUS_TEXT:
                    continue
                elif replacement is not None:
                    res += text + str(replacement)
                    continue
            res += f"{text}[{pattern}]"
        return res


def get_next_sequence_number(path, basename):
    result = -1
    if basename != "":
        basename = f"{basename}-"
    prefix_length = len(basename)
    for p in os.listdir(path):
        if p.startswith(basename):
            parts = os.path.splitext(p[prefix_length:])[0].split("-")
            try:
                result = max(int(parts[0]), result)
            except ValueError:
                pass
    return result + 1


def save_image_with_geninfo(
    image, geninfo, filename, extension=None, existing_pnginfo=None, pnginfo_section_name="parameters"
):
    """Write the image with the infotext: PNG text chunk, or EXIF UserComment for jpg/webp."""
    if extension is None:
        extension = os.path.splitext(filename)[1]
    image_format = Image.registered_extensions()[extension]
    if extension.lower() == ".png":
        existing_pnginfo = existing_pnginfo or {}
        if opts.enable_pnginfo:
            existing_pnginfo[pnginfo_section_name] = geninfo
            pnginfo_data = PngImagePlugin.PngInfo()
            for k, v in existing_pnginfo.items():
                pnginfo_data.add_text(k, str(v))
        else:
            pnginfo_data = None
        image.save(filename, format=image_format, pnginfo=pnginfo_data)
    elif extension.lower() in (".jpg", ".jpeg", ".webp"):
        if image.mode == "RGBA":
            image = image.convert("RGB")
        exif = Image.Exif()
        if opts.enable_pnginfo and geninfo is not None:
            exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + geninfo.encode("utf-16-be")
        image.save(filename, format=image_format, quality=opts.jpeg_quality, lossless=opts.webp_lossless, exif=exif)
    else:
        image.save(filename, format=image_format, quality=opts.jpeg_quality)


def save_image(
    image,
    path,
    basename,
    seed=None,
    prompt=None,
    extension="png",
    info=None,
    short_filename=False,
    no_prompt=False,
    grid=False,
    pnginfo_section_name="parameters",
    p=None,
    existing_info=None,
    forced_filename=None,
    suffix="",
    save_to_dirs=None,
):
    """Save an image; returns ``(fullfn, txt_fullfn)`` (txt_fullfn None unless ``opts.save_txt``)."""
    namegen = FilenameGenerator(p, seed, prompt, image, basename=basename)

    if save_to_dirs is None:
        save_to_dirs = (grid and opts.grid_save_to_dirs) or (not grid and opts.save_to_dirs and not no_prompt)

    if save_to_dirs:
        dirname = namegen.apply(opts.directories_filename_pattern or "[prompt_words]").lstrip(" ").rstrip("\\ /")
        path = os.path.join(path, dirname)

    os.makedirs(path, exist_ok=True)

    if forced_filename is None:
        if short_filename or seed is None:
            file_decoration = ""
        elif opts.save_to_dirs:
            file_decoration = opts.samples_filename_pattern or "[seed]"
        else:
            file_decoration = opts.samples_filename_pattern or "[seed]-[prompt_spaces]"

        file_decoration = namegen.apply(file_decoration) + suffix

        add_number = opts.save_images_add_number or file_decoration == ""

        if file_decoration != "" and add_number:
            file_decoration = f"-{file_decoration}"

        if add_number:
            basecount = get_next_sequence_number(path, basename)
            fullfn = None
            for i in range(500):
                fn = f"{basecount + i:05}" if basename == "" else f"{basename}-{basecount + i:04}"
                fullfn = os.path.join(path, f"{fn}{file_decoration}.{extension}")
                if not os.path.exists(fullfn):
                    break
        else:
            fullfn = os.path.join(path, f"{file_decoration}.{extension}")
    else:
        fullfn = os.path.join(path, f"{forced_filename}.{extension}")

    pnginfo = existing_info or {}
    if info is not None:
        pnginfo[pnginfo_section_name] = info

    params = script_callbacks.ImageSaveParams(image, p, fullfn, pnginfo)
    script_callbacks.before_image_saved_callback(params)

    image = params.image
    fullfn = params.filename
    info = params.pnginfo.get(pnginfo_section_name, None)

    fullfn_without_extension, extension = os.path.splitext(params.filename)
    temp_file_path = f"{fullfn_without_extension}.tmp"
    save_image_with_geninfo(
        image,
        info,
        temp_file_path,
        extension,
        existing_pnginfo=params.pnginfo,
        pnginfo_section_name=pnginfo_section_name,
    )
    os.replace(temp_file_path, fullfn_without_extension + extension)

    image.already_saved_as = fullfn
    saved.append((fullfn, info))

    if opts.save_txt and info is not None:
        txt_fullfn = f"{fullfn_without_extension}.txt"
        with open(txt_fullfn, "w", encoding="utf8") as file:
            file.write(f"{info}\n")
    else:
        txt_fullfn = None

    script_callbacks.image_saved_callback(params)
    return fullfn, txt_fullfn


def read_info_from_image(image):
    """``(infotext or None, other info items)`` from a PNG chunk or the EXIF UserComment."""
    items = (image.info or {}).copy()
    geninfo = items.pop("parameters", None)
    if geninfo is None and "exif" in items:
        comment = image.getexif().get_ifd(0x8769).get(0x9286)
        if isinstance(comment, bytes) and comment.startswith(b"UNICODE\0"):
            geninfo = comment[8:].decode("utf-16-be", errors="ignore")
        elif isinstance(comment, str):
            geninfo = comment
    return geninfo, items


def image_grid(imgs, batch_size=1, rows=None):
    """The images on a black grid (rows from ``opts.n_rows``; -1 = about square)."""
    if rows is None:
        if opts.n_rows > 0:
            rows = opts.n_rows
        elif opts.n_rows == 0:
            rows = batch_size
        else:
            rows = math.sqrt(len(imgs))
            rows = round(rows)
    if rows > len(imgs):
        rows = len(imgs)
    cols = math.ceil(len(imgs) / rows)
    w, h = imgs[0].size
    grid = Image.new("RGB", size=(cols * w, rows * h), color="black")
    for i, img in enumerate(imgs):
        grid.paste(img, box=(i % cols * w, i // cols * h))
    return grid
