"""Stand-in of modules/ui.py: only the paste-field lists extensions read."""

txt2img_paste_fields: list = []
img2img_paste_fields: list = []
