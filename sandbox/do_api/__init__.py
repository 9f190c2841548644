"""A local, stateful DigitalOcean API for the sandbox, checked against DigitalOcean's OpenAPI spec.

Run: ``python -m sandbox.do_api --port P --token-file F --seed FILE [--host 127.0.0.1]``.

The DigitalOcean API (``/v2``; ``Authorization: Bearer <token>`` from the token file, else 401):

- domains: ``GET /v2/domains``, ``GET /v2/domains/{name}``;
- records: ``GET``/``POST /v2/domains/{name}/records`` (``?name=`` takes the full name, e.g.
  ``www.example.test``; ``?type=``), ``GET``/``PUT``/``PATCH``/``DELETE .../records/{id}``;
- load balancers: ``GET /v2/load_balancers[/{id}]``, ``PUT /v2/load_balancers/{id}`` (a full
  representation: settings left out return to their defaults, as on DigitalOcean),
  ``POST``/``DELETE /v2/load_balancers/{id}/droplets`` (204);
- droplets: ``GET /v2/droplets[?tag_name=T]``, ``GET /v2/droplets/{id}``;
- App Platform: ``GET /v2/apps``, ``GET``/``PUT /v2/apps/{id}`` (the app spec, its ``envs``
  at app level and per component: services, workers, jobs, static_sites, functions),
  ``GET``/``POST /v2/apps/{id}/deployments``, ``GET .../deployments/{dep}``,
  ``POST .../deployments/{dep}/cancel``.

Every request is checked against the vendored ``digitalocean-openapi.yaml`` (Apache-2.0,
DigitalOcean) and refused the way DigitalOcean would, as ``{"id", "message", "request_id"}``
naming the field: 400 bad query, missing body or bad JSON, 404 unknown path or id, 405 wrong
method, 415 body not JSON, 422 a body not matching the schema or breaking a rule. Every answer
is checked too; one that does not match (or a crash) is the sandbox's own bug: it becomes a
500 ``sandbox_error``, is logged, and is kept in the violations list. Other operations in the
spec answer 501 ``not_implemented``.

DigitalOcean's rules beyond the description, each a 422 (:mod:`sandbox.do_api.rules`): A record
data not IPv4, ttl under 30, record type changed; unknown droplet; droplets by id on a tagged
load balancer; a load balancer's region or type changed; a regional load balancer given
droplets (by id) of another region (by tag it balances only the tagged droplets of its own
region, so a tag with none there leaves it with no backends); ``glb_settings`` or
``target_load_balancer_ids`` on a load balancer that is not ``type: GLOBAL``; a global one
targeting itself, an unknown or a global load balancer; ``region_priorities`` naming an
unknown region or a priority under 1; ``failover_threshold`` outside 0-100; an app spec with a
component name used twice or an env key set twice in one list. ``SECRET`` env values come
back encrypted (``EV[1:...]``), as on DigitalOcean.

A spec update (``PUT /v2/apps/{id}``, or ``POST .../deployments``) creates a deployment that
moves through ``PENDING_BUILD``, ``BUILDING``, ``PENDING_DEPLOY``, ``DEPLOYING`` to ``ACTIVE``
over the app's ``deploy_seconds`` (seed; default 2); meanwhile it is the app's
``in_progress_deployment``, then its ``active_deployment``. A newer deployment supersedes one
in progress; a deployment fault ends it in ``ERROR`` with the failed step's reason.

Control endpoints (no auth, JSON):

- ``GET /_sandbox/requests[?since=SEQ]`` -> ``{"requests": [{"seq", "time", "started",
  "ended", "holder", "fence", "method", "path", "query", "operation", "status", "fault",
  "body"}]}``, in the order answered (the last 10000 calls to ``/v2``; ``started`` and
  ``ended`` are UTC times to the microsecond, ``time`` is ``ended``; ``holder`` and ``fence``
  are the ``X-DDB-Failover-Holder`` and ``X-DDB-Failover-Fence`` request headers, the lease
  holder and its fencing token, or null; body is the parsed JSON request body or null).
  ``DELETE`` clears it.
- ``POST /_sandbox/faults`` adds a fault (201 ``{"fault": {...}}``), one of:

  - ``{"status": 401|403|422|429|500|503, "path_prefix": "/v2/..." (default "/v2/"),
    "method": "GET"|"POST"|"PUT"|"PATCH"|"DELETE" (default any), "retry_after": S (429 only,
    default 1), "message": M (default DigitalOcean's)}``: matching authorized calls get that
    status in DigitalOcean's error shape (429 with ``Retry-After`` and ``ratelimit-*``);
  - ``{"delay_seconds": S (0 < S <= 600), "apply": "before"|"after"|"never" (default after),
    "path_prefix": ..., "method": ...}``: matching authorized calls answer S seconds late.
    ``before``: the change is made, then the delay, then the normal answer; ``after``: the
    delay, then the change and the normal answer; ``never``: the delay, then 504
    ``gateway_timeout`` and no change. A read just answers late (or 504 with ``never``). Other
    calls are answered meanwhile; stopping the sandbox cuts delays short;
  - ``{"deployment": "ERROR", "phase": "BUILDING"|"DEPLOYING" (default DEPLOYING), "app_id":
    ID (default any app), "message": M}``: new deployments end in ``ERROR`` after that phase,
    the failed step carrying ``reason: {code, message}``;

  and lasts for ``"count": N`` matches, or ``"duration_seconds": S`` from now, or, with
  neither, until cleared. ``GET`` lists live faults (with ``count`` left or
  ``seconds_left``), ``DELETE`` drops them all.
- ``GET /_sandbox/ratelimit`` -> ``{"per_hour", "per_minute", "used_last_hour",
  "used_last_minute"}``; ``POST`` ``{"per_hour": N, "per_minute": M}`` (integers from 1; a field
  left out is DigitalOcean's default) enforces those limits, the calls already counted still
  counting; ``DELETE`` restores DigitalOcean's 5,000 an hour and 250 a minute and forgets the
  calls counted. Every ``/v2`` answer carries ``ratelimit-limit``, ``ratelimit-remaining`` and
  ``ratelimit-reset`` (:mod:`sandbox.do_api.ratelimit`); a call over a limit is answered 429
  ``too_many_requests``, over the minute's with ``Retry-After``.
- ``GET /_sandbox/violations`` -> ``{"violations": [{"time", "method", "path", "operation",
  "status", "problem"}]}``: responses of ours that failed the spec (empty when all is well).
- ``GET /_sandbox/state`` dumps every object in API shapes; ``POST /_sandbox/state`` ``{}`` resets
  to the startup seed, ``{"seed": {...}}`` to a new one; either clears faults and the request
  log and restores the rate limits.

The seed format and the default ddb-failover seed are in :mod:`sandbox.do_api.seed`.
"""
