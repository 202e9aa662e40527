"""The process exit codes of ``assure`` (documented in the README), in a module that imports nothing,
so a command that needs only them (``assure digest``) does not load the policy and its records."""

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_ERROR = 3
