"""Device policy, shared by the loaders, the runtime and the engines.

- :mod:`.memory`: which model component sits where during a job (the memory plan) and how it is applied;
- :mod:`.precision`: device and dtype policy.
"""
