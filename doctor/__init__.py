"""airflow-gke: diagnostics for Apache Airflow on Google Kubernetes Engine."""

__version__ = "0.1.0"
