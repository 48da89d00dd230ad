"""Pure manifest builders: validated experiment (+ operator config) in, Kubernetes object dicts out.

No I/O and no owner references here (the reconciler adds those with kopf.adopt), so each builder is
tested against a golden dict.
"""
