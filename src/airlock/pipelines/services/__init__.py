"""One service per ARM resource; the only code that holds the repository.

- :mod:`.registries`: ``registries`` (their delete takes their pipelines and runs along);
- :mod:`.identities`: ``userAssignedIdentities``;
- :mod:`.vaults`: the embedded ``vaults``, their access policies and secrets;
- :mod:`.pipelines`: ``exportPipelines`` and ``importPipelines``;
- :mod:`.runs`: ``pipelineRuns``: the run state machine, the executor, recovery.

Services take and return typed models (:mod:`airlock.pipelines.models`) and raise
:mod:`airlock.errors` exceptions, never HTTP statuses. :class:`airlock.pipelines.plane.ControlPlane`
assembles them.
"""
