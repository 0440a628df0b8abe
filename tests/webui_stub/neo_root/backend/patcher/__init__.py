"""Neo: stand-in of ``backend/patcher``."""
