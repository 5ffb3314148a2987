"""The dashboard's navigation: every section of the product, built or not.

A section that is not built yet points at ``web.coming_soon``; when its blueprint lands, give the entry
its endpoint and drop the slug from ``COMING_SOON``.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import request, url_for


@dataclass(frozen=True)
class NavItem:
    label: str
    endpoint: str
    slug: str | None = None  # for web.coming_soon
    blueprint: str | None = None  # every page of this blueprint highlights the entry
    icon: str = "dot"

    @property
    def soon(self) -> bool:
        return self.endpoint == "web.coming_soon"

    @property
    def url(self) -> str:
        return url_for(self.endpoint, section=self.slug) if self.soon else url_for(self.endpoint)

    @property
    def active(self) -> bool:
        if self.soon:
            return request.endpoint == "web.coming_soon" and (request.view_args or {}).get("section") == self.slug
        if self.blueprint:
            return request.blueprint == self.blueprint
        return request.endpoint == self.endpoint


def _soon(label: str, slug: str, icon: str) -> NavItem:
    return NavItem(label, "web.coming_soon", slug=slug, icon=icon)


NAV: list[tuple[str | None, list[NavItem]]] = [
    (None, [NavItem("Overview", "web.home", icon="home")]),
    ("Messaging", [
        NavItem("Messages", "web_messages.index", blueprint="web_messages", icon="send"),
        NavItem("Templates", "web_templates.index", blueprint="web_templates", icon="template"),
        NavItem("Broadcasts", "web_broadcasts.index", blueprint="web_broadcasts", icon="broadcast"),
    ]),
    ("Audience", [
        NavItem("Contacts", "web_contacts.index", blueprint="web_contacts", icon="contacts"),
        NavItem("Import", "web_imports.index", blueprint="web_imports", icon="plus"),
        NavItem("Lists", "web_lists.index", blueprint="web_lists", icon="list"),
        NavItem("Suppressions", "web_suppressions.index", blueprint="web_suppressions", icon="block"),
    ]),
    ("Deliverability", [
        NavItem("Domains", "web_domains.index", blueprint="web_domains", icon="globe"),
        NavItem("Webhooks", "web_webhooks.index", blueprint="web_webhooks", icon="hook"),
        _soon("Validation", "validation", "check"),
        _soon("Signals", "signals", "signal"),
    ]),
    ("Insights", [
        _soon("Analytics", "analytics", "chart"),
    ]),
    ("Developers", [
        NavItem("API keys", "web_keys.index", blueprint="web_keys", icon="key"),
        NavItem("Request log", "web_requests.index", blueprint="web_requests", icon="log"),
    ]),
    ("Organization", [
        _soon("Billing", "billing", "card"),
        NavItem("Settings", "web_accounts.settings", blueprint="web_accounts", icon="settings"),
    ]),
]

COMING_SOON = {item.slug: item for _, items in NAV for item in items if item.soon}

# What each unbuilt section will do, so the placeholder page says something true and useful.
SOON_TEXT = {
    "webhooks": "Endpoints that receive signed event notifications, with delivery history and retries.",
    "validation": "Check addresses before you send: syntax, MX records, disposable and role accounts.",
    "signals": "Retention signals: engagement scores and churn risk for every contact.",
    "analytics": "Delivery, open, click, bounce and complaint rates over time.",
    "billing": "Your plan, usage this period and invoices.",
}
