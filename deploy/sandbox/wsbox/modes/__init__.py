"""The sandbox's modes, one mixin of `Sandbox` per group of modes; `MODES` (consts.py) lists them."""
