"""The errors sweep reports to its user as one line (the CLI exits with code 2)."""


class SpecError(ValueError):
    """A spec that cannot run; the message is one line naming the key and the fix."""


class StoreError(ValueError):
    """A results directory that cannot be used as asked; the message says how to fix it."""
