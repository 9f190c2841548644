"""A local, stateful DigitalOcean API for the sandbox, checked against DigitalOcean's OpenAPI spec.

Run: ``python -m sandbox.do_api --port P --token-file F --seed FILE [--host 127.0.0.1]``.

The DigitalOcean API (``/v2``; ``Authorization: Bearer <token>`` from the token file, else 401):

- domains: ``GET /v2/domains``, ``GET /v2/domains/{name}``;
- records: ``GET``/``POST /v2/domains/{name}/records`` (``?name=`` takes the full name, e.g.
  ``www.example.test``; ``?type=``), ``GET``/``PUT``/``PATCH``/``DELETE .../records/{id}``;
- load balancers: ``GET /v2/load_balancers[/{id}]``, ``PUT /v2/load_balancers/{id}`` (a full
  representation: settings left out return to their defaults, as on DigitalOcean),
  ``POST``/``DELETE /v2/load_balancers/{id}/droplets`` (204);
- droplets: ``GET /v2/droplets[?tag_name=T]``, ``GET /v2/droplets/{id}``.

Every request is checked against the vendored ``digitalocean-openapi.yaml`` (Apache-2.0,
DigitalOcean) and refused the way DigitalOcean would, as ``{"id", "message", "request_id"}``
naming the field: 400 bad query, missing body or bad JSON, 404 unknown path or id, 405 wrong
method, 415 body not JSON, 422 a body not matching the schema or breaking a rule (A record data
not IPv4, ttl under 30, record type changed, unknown droplet, droplets by id on a tagged load
balancer, region changed). Every answer is checked too; one that does not match (or a crash) is
the sandbox's own bug: it becomes a 500 ``sandbox_error``, is logged, and is kept in the
violations list. Other operations in the spec answer 501 ``not_implemented``.

Control endpoints (no auth, JSON):

- ``GET /_sandbox/requests[?since=SEQ]`` -> ``{"requests": [{"seq", "time", "method", "path",
  "query", "operation", "status", "fault", "body"}]}``, oldest first (the last 10000 calls to
  ``/v2``; body is the parsed JSON request body or null). ``DELETE`` clears it.
- ``POST /_sandbox/faults`` ``{"status": 429|500|503, "count": N, "retry_after": S (429 only,
  default 1), "path_prefix": "/v2/..." (default "/v2/")}``: the next N authorized calls under the
  prefix get that status in DigitalOcean's error shape (429 with ``Retry-After`` and
  ``ratelimit-*`` headers). ``GET`` lists pending faults, ``DELETE`` drops them.
- ``GET /_sandbox/violations`` -> ``{"violations": [{"time", "method", "path", "operation",
  "status", "problem"}]}``: responses of ours that failed the spec (empty when all is well).
- ``GET /_sandbox/state`` dumps every object in API shapes; ``POST /_sandbox/state`` ``{}`` resets
  to the startup seed, ``{"seed": {...}}`` to a new one; either clears faults and the request log.

The seed format and the default ddb-failover seed are in :mod:`sandbox.do_api.seed`.
"""
