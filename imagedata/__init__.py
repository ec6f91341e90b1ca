"""Datasets as tables of image files, persisted splits and a decode-once image cache."""
