"""Neo: stand-in of Forge Neo's ``backend`` package (Haoming02/sd-webui-forge-classic, branch neo)."""
