"""One function per implemented DigitalOcean operation: a validated call in, (status, body) out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.do_api import shapes
from sandbox.do_api.errors import ApiError
from sandbox.do_api.rules import RuleBroken
from sandbox.do_api.spec import Operation
from sandbox.do_api.store import Store

Result = tuple[int, dict[str, Any] | None]


@dataclass(frozen=True)
class Call:
    """A request that passed validation: its operation, query, JSON body and absolute URL."""

    operation: Operation
    query: Mapping[str, str]
    body: Any
    url: str

    def var(self, name: str) -> str:
        return self.operation.variables[name]


def _page(key: str, items: list[dict[str, Any]], call: Call) -> Result:
    page = int(call.query.get("page", 1))
    per_page = int(call.query.get("per_page", 20))
    extra = {k: v for k, v in call.query.items() if k not in ("page", "per_page")}
    return 200, shapes.page(key, items, page, per_page, call.url, extra)


def domains_list(store: Store, call: Call) -> Result:
    return _page("domains", store.list_domains(), call)


def domains_get(store: Store, call: Call) -> Result:
    return 200, {"domain": store.get_domain(call.var("domain_name"))}


def domains_list_records(store: Store, call: Call) -> Result:
    records = store.list_records(
        call.var("domain_name"), call.query.get("name"), call.query.get("type")
    )
    return _page("domain_records", records, call)


def domains_create_record(store: Store, call: Call) -> Result:
    return 201, {"domain_record": store.create_record(call.var("domain_name"), call.body)}


def domains_get_record(store: Store, call: Call) -> Result:
    record = store.get_record(call.var("domain_name"), int(call.var("domain_record_id")))
    return 200, {"domain_record": record}


def domains_update_record(store: Store, call: Call) -> Result:
    record_id = int(call.var("domain_record_id"))
    return 200, {
        "domain_record": store.update_record(call.var("domain_name"), record_id, call.body)
    }


def domains_delete_record(store: Store, call: Call) -> Result:
    store.delete_record(call.var("domain_name"), int(call.var("domain_record_id")))
    return 204, None


def droplets_list(store: Store, call: Call) -> Result:
    if call.query.get("type") == "gpus":
        return _page("droplets", [], call)
    droplets = store.list_droplets(call.query.get("tag_name"), call.query.get("name"))
    return _page("droplets", droplets, call)


def droplets_get(store: Store, call: Call) -> Result:
    return 200, {"droplet": store.get_droplet(int(call.var("droplet_id")))}


def load_balancers_list(store: Store, call: Call) -> Result:
    return _page("load_balancers", store.list_load_balancers(), call)


def load_balancers_get(store: Store, call: Call) -> Result:
    return 200, {"load_balancer": store.get_load_balancer(call.var("lb_id"))}


def load_balancers_update(store: Store, call: Call) -> Result:
    return 200, {"load_balancer": store.update_load_balancer(call.var("lb_id"), call.body)}


def load_balancers_add_droplets(store: Store, call: Call) -> Result:
    store.add_lb_droplets(call.var("lb_id"), call.body["droplet_ids"])
    return 204, None


def load_balancers_remove_droplets(store: Store, call: Call) -> Result:
    store.remove_lb_droplets(call.var("lb_id"), call.body["droplet_ids"])
    return 204, None


def apps_list(store: Store, call: Call) -> Result:
    return _page("apps", store.apps.list_apps(), call)


def apps_get(store: Store, call: Call) -> Result:
    return 200, {"app": store.apps.get(call.var("id"))}


def apps_update(store: Store, call: Call) -> Result:
    return 200, {"app": store.apps.update(call.var("id"), call.body["spec"])}


def apps_list_deployments(store: Store, call: Call) -> Result:
    return _page("deployments", store.apps.list_deployments(call.var("app_id")), call)


def apps_create_deployment(store: Store, call: Call) -> Result:
    return 200, {"deployment": store.apps.create_deployment(call.var("app_id"))}


def apps_get_deployment(store: Store, call: Call) -> Result:
    deployment = store.apps.get_deployment(call.var("app_id"), call.var("deployment_id"))
    return 200, {"deployment": deployment}


def apps_cancel_deployment(store: Store, call: Call) -> Result:
    deployment = store.apps.cancel_deployment(call.var("app_id"), call.var("deployment_id"))
    return 200, {"deployment": deployment}


HANDLERS: dict[str, Callable[[Store, Call], Result]] = {
    "domains_list": domains_list,
    "domains_get": domains_get,
    "domains_list_records": domains_list_records,
    "domains_create_record": domains_create_record,
    "domains_get_record": domains_get_record,
    "domains_patch_record": domains_update_record,
    "domains_update_record": domains_update_record,
    "domains_delete_record": domains_delete_record,
    "droplets_list": droplets_list,
    "droplets_get": droplets_get,
    "loadBalancers_list": load_balancers_list,
    "loadBalancers_get": load_balancers_get,
    "loadBalancers_update": load_balancers_update,
    "loadBalancers_add_droplets": load_balancers_add_droplets,
    "loadBalancers_remove_droplets": load_balancers_remove_droplets,
    "apps_list": apps_list,
    "apps_get": apps_get,
    "apps_update": apps_update,
    "apps_list_deployments": apps_list_deployments,
    "apps_create_deployment": apps_create_deployment,
    "apps_get_deployment": apps_get_deployment,
    "apps_cancel_deployment": apps_cancel_deployment,
}


def handle(store: Store, call: Call) -> Result:
    """Run call's operation; ApiError for DigitalOcean-style failures (422 for a broken rule)."""
    handler = HANDLERS.get(call.operation.operation_id)
    if handler is None:
        raise ApiError(
            501,
            "not_implemented",
            f"the DigitalOcean sandbox does not implement {call.operation.operation_id}",
        )
    try:
        return handler(store, call)
    except RuleBroken as broken:
        raise ApiError(422, "unprocessable_entity", str(broken)) from None
