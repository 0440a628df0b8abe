"""F: stand-in of Forge's ``backend`` package (importable only when the stand-in imitates Forge)."""
