"""The stages of the order flow, one package each, in the order an order meets them:
``entry``, ``review``, ``fulfilment``, ``tracking``, ``settlement``.

Each owns its records (its ``tables``), jobs, periodic work and reactions, and is
registered like a plugin (``core.assembly.STAGES``), so the kernel imports none of
them. A stage imports the kernel and, where it must, the stages before it; what it
needs of a later one comes through a hook or a kernel interface (``lint-imports``
keeps it so: the contracts are in ``pyproject.toml``).
"""
