"""The attack suite: real ``poshuk serve`` processes on 127.0.0.1, sent what an outsider could send.

Each module starts its own server (over its own copy of the example index) with the
settings its attack needs, passed as ``POSHUK_SERVICE_*`` variables.
"""
