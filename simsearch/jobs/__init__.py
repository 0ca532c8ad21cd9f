"""Ingest jobs: from an upload (or a server folder) to a finished run, off the request thread.

A job is an :class:`~simsearch.store.models.IngestRun` row plus a folder
``<home>/uploads/<run_id>/`` holding its :class:`~simsearch.jobs.manifest.Manifest` and, for
uploads, the staged files. The modules, in the order a job meets them:

- :mod:`~simsearch.store.lifecycle`: every job's statuses and kinds, and every change of status
  (create, claim, heartbeat, progress, finish, fail, requeue, lost), for ingest and the other
  kinds of job alike;
- :mod:`~simsearch.jobs.staging`: uploaded files and zip archives written to a staging folder;
- :mod:`~simsearch.jobs.execute`: creating the queued run (:func:`create_run`), running it
  (:func:`execute_run`) and recording failures (:func:`mark_failed`);
- :mod:`~simsearch.jobs.runners`: who runs it: a thread pool in this process, or an RQ queue;
- :mod:`~simsearch.jobs.rq`: the RQ side: enqueueing, the job function, the worker loop;
- :mod:`~simsearch.jobs.status`: a run as the JSON the API and UI show.

Nothing here imports Flask: the web app, the CLI and ``simsearch worker`` all use it.
"""
