"""What the tests share that is not a test: the fake backend, the tiny models, hand-made run
dirs and corpora, the endpoint server and proxy, the fork server, the docs reader."""
