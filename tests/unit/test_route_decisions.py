"""Every web route decides who may use it: a role list (`roles_required`, `api_roles`), or a place in
the explicit list below. A new route with no decision fails here until one is made."""
from __future__ import annotations

# Routes any stranger may reach, each with the reason; nothing else is open.
OPEN_ROUTES = {
    "home.index": "the front page",
    "home.healthz": "health check for the proxy and monitoring (no data)",
    "static": "stylesheets, scripts, fonts",
    "auth.login": "the sign-in page",
    "tickets.public_new": "the public complaint and suggestion form (rate limited)",
    "tickets.public_done": "the reference number just filed, from the filer's own cookie",
    "track.index": "public tracking: reference plus national ID or mobile (rate limited)",
    "api.track": "public tracking in the API (rate limited)",
    "api.openapi": "the API's description",
}
# Routes with a decision of their own, not a role list.
OWN_DECISION = {
    "auth.logout": "any signed-in user (login_required)",
    "auth.change_password": "any signed-in user, for their own password (login_required)",
    "provisioning.profile": "a phone's own provisioning credentials",
    "provisioning.ca_certificate": "the deployment CA's public certificate, for phones",
    "metrics.metrics": "loopback without proxy headers, or the bearer token in secrets/metrics-token",
}


def route_decisions(app) -> dict[str, str]:
    """endpoint -> who may use it, for every route the app serves."""
    decisions = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if getattr(view, "roles", None):
            decisions[rule.endpoint] = "roles: " + ", ".join(sorted(r.value for r in view.roles))
        elif hasattr(view, "api_roles"):
            decisions[rule.endpoint] = ("public, or API roles: " if view.api_public else "API roles: ") + \
                ", ".join(sorted(r.value for r in view.api_roles))
        else:
            decisions[rule.endpoint] = OPEN_ROUTES.get(rule.endpoint) or OWN_DECISION.get(rule.endpoint) or ""
    return decisions


def test_every_route_has_a_decision(web_app):
    decisions = route_decisions(web_app)
    undecided = sorted(endpoint for endpoint, who in decisions.items() if not who)
    table = "\n".join(f"{endpoint:40} {who or 'NO DECISION'}" for endpoint, who in sorted(decisions.items()))
    assert undecided == [], f"routes with no decision on who may use them:\n{table}"
    assert set(OPEN_ROUTES) | set(OWN_DECISION) <= set(decisions), "the open list names routes that are gone"
