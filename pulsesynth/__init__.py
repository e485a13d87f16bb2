"""Pulse Synth: differentially private synthetic data for a city's sensitive tables.

The domain library. It knows DuckDB, Great Expectations, PyTorch/Opacus and
scikit-learn; it knows nothing of Prefect (that lives in ``tasks/`` and ``flows/``).
"""

__version__ = "0.1.0"
