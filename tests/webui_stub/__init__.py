"""Stand-in of the AUTOMATIC1111 / Forge WebUI for tests (see ``fixture.py`` for the ``webui`` fixture).

``webui_root/`` holds the stand-in ``modules`` package and ``launch.py``; ``forge_root/`` Forge's ``backend``.
Signatures follow docs/webui-contract.md (A1111 v1.10.1; Forge differences marked F:).
"""
