"""Exports of finished run folders to other tools (MLflow). Reading a folder (:mod:`.folders`) is apart
from the tool's client (:mod:`.mlflow_export`), so what is exported can be tested without the tool."""
