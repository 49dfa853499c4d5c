"""analyze/: best-practice analysis of a config set or the running mesh (meshward analyze)."""
