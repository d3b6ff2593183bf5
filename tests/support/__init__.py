"""What several test modules share: fixtures' building blocks, fake corpora, process helpers.

Test modules import from here, never from each other or from a ``conftest``: a test module
stays free to change, and the shared pieces have one home.
"""
