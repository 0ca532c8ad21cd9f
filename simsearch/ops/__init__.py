"""Operations: what simsearch can do, without Flask or click.

Each function takes the :class:`~simsearch.context.AppContext` and plain values, checks them,
does the work (in the database, the indexes, the job queue) and returns plain data (dicts,
lists, small dataclasses); a bad value raises a :mod:`simsearch.errors` exception naming the
field. The JSON API, the browser UI and the CLI all call these, so each rule and each piece of
assembly (a collection's summary, the backbone list, label chunking) exists once.

- :mod:`~simsearch.ops.collections`: list, summary, detail, create, delete;
- :mod:`~simsearch.ops.images`: get, list with filters, labels, delete, thumbnails;
- :mod:`~simsearch.ops.search`: by an uploaded image, by an ingested image;
- :mod:`~simsearch.ops.ingest`: jobs from a server folder, uploaded files or a zip;
- :mod:`~simsearch.ops.jobs`: a job's status, recent jobs;
- :mod:`~simsearch.ops.backbones`: the backbones and their weights status;
- :mod:`~simsearch.ops.analysis`, :mod:`~simsearch.ops.comparison`: clusters, evaluation, maps
  and backbone comparison over the stored vectors (:mod:`~simsearch.ops.vectors`), as typed
  results (:mod:`~simsearch.ops.analysis_results`).
"""
