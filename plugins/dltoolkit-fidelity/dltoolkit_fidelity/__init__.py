"""dltoolkit-fidelity: FID, IS, KID and precision/recall for dltoolkit, computed by torch-fidelity."""
