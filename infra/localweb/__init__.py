"""The synthetic web: a seeded corpus generator and a faulty HTTP server on loopback, for demos, tests, benchmarks.

Public API, imported from the submodules (this package imports nothing, so the CLI stays fast): `config.WebConfig`,
`config.load_web(out_dir)`, `generate.generate(cfg, out_dir)`, `handle.serve_in_thread(out_dir)`,
`handle.serve_forever`, `handle.LocalWeb`, `handle.LocalWebProcess`, `faults.Fault`, `faults.EXPECTED_OUTCOME`.
"""
