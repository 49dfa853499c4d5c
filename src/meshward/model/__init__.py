"""model/: typed resources → the frozen mesh IR (`meshward.model.ir`)."""
