"""Imported last by the fork server's preload (launcher/forkserver.py, FORKSERVER_PRELOAD): its import marks
the end of the preload on the start-up timeline (srl_runtime/timeline.py). Nothing else."""

from srl_runtime import timeline

timeline.set_label("forkserver")
timeline.mark("preloaded")
