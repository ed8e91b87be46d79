"""Hydra config groups shipped with the package; ``hydra.main(config_path="conf")`` reads them."""
