"""``keel replay``: re-run a recorded session through the real agent loop.

``recording`` (what a session left on Kafka, as data), ``ports`` (the loop's ports answered from
it), ``engine`` (run and compare), ``explain`` and ``report`` (words for a person), ``source``
(reading Kafka), ``live`` (another model through the LLM gateway), ``command`` and ``args``.
"""
