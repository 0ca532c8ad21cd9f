"""Helpers shared by test modules (issue 20, item 7): a test module imports them from here (or
gets them as fixtures from tests/conftest.py), never from another test module.

- :mod:`.waiting`: ``wait_until`` (poll a condition under a deadline, instead of sleep-then-assert)
- :mod:`.api`: the HTTP API's error shape, jobs followed to their end, analysis results
- :mod:`.analysis`: synthetic vector collections, and a gate that holds a job on its thread
- :mod:`.jobs`: Redis queues and ``simsearch worker`` subprocesses
- :mod:`.browser`: headless Chromium (one driver recipe), the live server and its pets collection
- :mod:`.cli`: the CLI run in-process against a throwaway home
- :mod:`.servers`: free ports, servers started as subprocesses
- :mod:`.db`: rows and vectors written straight into a store
- :mod:`.races`: running requests / ingests at once behind barriers
- :mod:`.benchmarks`: a benchmark script loaded by path (``load(name)``), for the tests reusing its definitions

The browser fixtures (``browser``, ``live``, ``_no_js_errors``) are registered for every module by
``pytest_plugins`` in tests/conftest.py: import only functions and constants from :mod:`.browser`.
"""
