"""The runtime copied into exported reward functions (AWS Lambda zip, trainer module).

In a generated package this folder becomes the `rubric_reward` package, with the studio's own
scoring.py, json_extract.py, components.py, composite.py and template_sandbox.py copied in
verbatim. Inside the studio the five small alias modules here point at those originals, so the
runtime can also be imported and tested in place.
"""
