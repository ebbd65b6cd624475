"""Entry points of IoMT-AD: the streaming job, batch jobs and the ``iomt-ad`` command."""
