"""SmartNoise AIM and MST as peer baselines (``make bench-peers``).

``runner.py`` runs inside the separate venv ``.venv-peers`` (``requirements.txt``);
``benchmarks.peers_bench`` (main venv) drives it and scores its output with the product's
own encoder, bins and TSTR classifier.
"""
