"""Claude Code hooks: what Clarity does when Claude Code fires an event, and everything only hooks use.

``service`` handles each event (the routes are ``clarity.http.hook_routes``); ``events`` is the
JSON in and out; ``context`` builds what Claude reads; ``learner`` (with ``learning_queue``)
turns failures, fixes and commands into memories; ``controls`` is what the user switched off;
``injections`` logs what the hooks told Claude, for the dashboard; ``command_client`` is the
standard-library-only client a ``command`` hook runs by path.
"""
