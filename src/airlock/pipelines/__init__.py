"""ACR transfer pipelines: ExportPipeline, ImportPipeline, PipelineRun, and the source trigger."""
