"""The process exit codes of ``assure`` (documented in the README), in a module that imports nothing,
so a command that needs only them (``assure digest``) does not load the policy and its records."""

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_ERROR = 3
EXIT_AWAITING = 4
"""The gate: the verdict is PASS but a role the policy requires (``require_signoff``) has not approved yet."""
