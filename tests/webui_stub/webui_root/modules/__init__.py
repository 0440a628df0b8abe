"""Stand-in of the AUTOMATIC1111 v1.10.1 WebUI ``modules`` package (Forge differences where docs/webui-contract.md gives them).

Only what an extension touches is imitated; names and signatures follow ``docs/webui-contract.md``
(file:line facts). Calls that matter to tests are recorded (``shared.state.calls``, ``sd_models.calls``,
``errors.reported``, ``images.saved``...). ``modules._stub`` (not part of the WebUI) says which WebUI is imitated.
"""
