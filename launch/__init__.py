"""The plan launcher: many members (architectures × folds × seeds) as Ray tasks, each one a normal training process."""
