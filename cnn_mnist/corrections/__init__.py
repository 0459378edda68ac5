"""Corrections people send from the page: kept in SQLite or PostgreSQL, reviewed, exported as training data.

Neither training nor serving: the server and the review CLI (`cnn-mnist-corrections`) import it, the trainer
never does, so an edit here changes no model's derivation (nix/source.nix's "trainer" part leaves it out).
"""
