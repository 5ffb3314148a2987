"""Broadcast pages: index, create/edit form with list and template pickers, errors inline, proof, schedule
in a time zone, send now, stats card with its chart polled while sending (286 when done), cancel and delete
behind a confirmation."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from tests.views.conftest import csrf_from

BC_ID = re.compile(r"<code>(bc_[A-Za-z0-9]+)</code>")


def _test_mode(user):
    page = user.get("/broadcasts").get_data(as_text=True)
    resp = user.client.post("/session/mode", data={"csrf_token": csrf_from(page), "mode": "test",
                                                   "next": "/broadcasts"})
    assert resp.status_code in (302, 303)


def _audience(app, account, emails, mode="test"):
    """A static list of subscribed contacts (of ``mode``)."""
    from app.contacts.models import Contact
    from app.extensions import db
    from app.lists.models import ContactList, ListMember
    from app.tenancy import tenant_scope

    with app.app_context(), tenant_scope(account["organization_id"], mode):
        lst = ContactList(name="VIPs", list_type="static", metadata_={})
        db.session.add(lst)
        contacts = [Contact(email=e, first_name=e.split("@")[0].title(), consent_email="subscribed") for e in emails]
        db.session.add_all(contacts)
        db.session.flush()
        db.session.add_all([ListMember(list_id=lst.id, contact_id=c.id) for c in contacts])
        db.session.commit()
        return lst.id


def _create(user, list_id, **extra):
    data = {"name": "Launch", "from_": "Acme <news@acme.example>", "subject": "Hi {{first_name}}",
            "html": "<p>Hello {{first_name}}</p>", "audience_list_id": list_id, "message_type": "marketing",
            "track_opens": "y"}
    data.update(extra)
    return user.submit("/broadcasts/new", "/broadcasts", data)


def test_index_and_nav(user):
    html = user.get("/broadcasts").get_data(as_text=True)
    assert "No broadcasts yet" in html and 'href="/broadcasts/new"' in html
    assert 'href="/broadcasts"' in html  # the nav entry is live, no longer "soon"
    assert user.get("/broadcasts?status=bogus").status_code == 200


def test_create_send_and_watch_stats(app, account, user):
    _test_mode(user)
    list_id = _audience(app, account, ["ann@example.com", "bob@example.com"])
    form = user.get("/broadcasts/new").get_data(as_text=True)
    assert f'value="{list_id}"' in form and "VIPs" in form

    resp = _create(user, list_id)
    assert resp.status_code == 303, resp.get_data(as_text=True)[:2000]
    page = user.get(resp.headers["Location"])
    html = page.get_data(as_text=True)
    broadcast_id = BC_ID.search(html).group(1)
    assert "Launch" in html and "draft" in html and 'id="send-now"' in html and 'class="bc-chart"' in html
    assert "hx-trigger" not in html  # drafts do not poll

    sent = user.submit(f"/broadcasts/{broadcast_id}", f"/broadcasts/{broadcast_id}/send")
    assert sent.status_code == 303
    html = user.get(f"/broadcasts/{broadcast_id}").get_data(as_text=True)
    assert 'data-status="sending"' in html and 'hx-trigger="every 2s"' in html
    polled = user.get(f"/broadcasts/{broadcast_id}/stats", headers={"HX-Request": "true"})
    assert polled.status_code == 200 and 'id="broadcast-stats"' in polled.get_data(as_text=True)

    from app.broadcasts.tasks import fan_out_broadcast
    from app.delivery.tasks import dispatch_email
    with app.app_context():
        fan_out_broadcast(broadcast_id, tenant=(account["organization_id"], "test"))
        dispatch_email()
        from app.extensions import redis
        redis.client.delete(redis.key("broadcast-stats", broadcast_id))
    done = user.get(f"/broadcasts/{broadcast_id}/stats", headers={"HX-Request": "true"})
    assert done.status_code == 286  # polling stops
    body = done.get_data(as_text=True)
    assert 'data-status="sent"' in body and "hx-trigger" not in body
    assert re.search(r'id="stat-delivered">2<', body) and re.search(r'id="stat-total">2<', body)
    index = user.get("/broadcasts").get_data(as_text=True)
    assert f'id="broadcast-{broadcast_id}" data-status="sent"' in index


def test_form_errors_are_shown_inline(app, account, user):
    _test_mode(user)
    resp = _create(user, "", html="<p>{{#open}}</p>")
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "field-error" in html or "form-errors" in html
    resp = _create(user, "", from_="not an address")
    assert resp.status_code == 422 and "From" in resp.get_data(as_text=True)


def test_live_mode_unverified_sender_is_refused(app, account, user):
    resp = _create(user, "")
    assert resp.status_code == 422
    assert "verified domain" in resp.get_data(as_text=True)


def test_edit_proof_schedule_cancel_delete(app, account, user):
    _test_mode(user)
    list_id = _audience(app, account, ["cat@example.com"])
    location = _create(user, list_id).headers["Location"]
    broadcast_id = location.rstrip("/").rsplit("/", 1)[1]

    edited = user.submit(f"/broadcasts/{broadcast_id}/edit", f"/broadcasts/{broadcast_id}/edit",
                         {"name": "Launch v2", "from_": "news@acme.example", "subject": "New subject",
                          "html": "<p>v2</p>", "audience_list_id": list_id, "message_type": "marketing"})
    assert edited.status_code == 303
    html = user.get(f"/broadcasts/{broadcast_id}").get_data(as_text=True)
    assert "Launch v2" in html and "New subject" in html

    proof = user.submit(f"/broadcasts/{broadcast_id}", f"/broadcasts/{broadcast_id}/test",
                        {"recipients": "qa@example.com, boss@example.com"})
    assert proof.status_code == 303
    assert "Proof sent to qa@example.com, boss@example.com" in user.get(proof.headers["Location"]).get_data(as_text=True)
    bad_proof = user.submit(f"/broadcasts/{broadcast_id}", f"/broadcasts/{broadcast_id}/test",
                            {"recipients": ", ".join(f"p{i}@example.com" for i in range(6))})
    assert bad_proof.status_code == 422 and "1–5" in bad_proof.get_data(as_text=True)

    past = user.submit(f"/broadcasts/{broadcast_id}", f"/broadcasts/{broadcast_id}/schedule",
                       {"scheduled_at": "2001-01-01T09:00", "timezone": "Europe/Paris"})
    assert past.status_code == 422 and "in the past" in past.get_data(as_text=True)
    when = (datetime.utcnow() + timedelta(days=3)).replace(second=0, microsecond=0)
    scheduled = user.submit(f"/broadcasts/{broadcast_id}", f"/broadcasts/{broadcast_id}/schedule",
                            {"scheduled_at": when.strftime("%Y-%m-%dT%H:%M"), "timezone": "America/New_York"})
    assert scheduled.status_code == 303
    html = user.get(f"/broadcasts/{broadcast_id}").get_data(as_text=True)
    assert 'data-status="scheduled"' in html and "America/New_York" in html
    assert user.get(f"/broadcasts/{broadcast_id}/edit").status_code == 303  # no longer a draft

    confirm = user.get(f"/broadcasts/{broadcast_id}/cancel").get_data(as_text=True)
    assert "Cancel this broadcast?" in confirm
    canceled = user.submit(f"/broadcasts/{broadcast_id}/cancel", f"/broadcasts/{broadcast_id}/cancel")
    assert canceled.status_code == 303
    assert 'data-status="canceled"' in user.get(f"/broadcasts/{broadcast_id}").get_data(as_text=True)

    draft = _create(user, list_id).headers["Location"].rsplit("/", 1)[1]
    assert "Delete this draft?" in user.get(f"/broadcasts/{draft}/delete").get_data(as_text=True)
    gone = user.submit(f"/broadcasts/{draft}/delete", f"/broadcasts/{draft}/delete")
    assert gone.status_code == 303 and user.get(f"/broadcasts/{draft}").status_code == 404


def test_other_organizations_broadcasts_are_not_found(app, account, other_account, user):
    from app.broadcasts.models import Broadcast
    from app.extensions import db
    from app.tenancy import tenant_scope
    with app.app_context(), tenant_scope(other_account["organization_id"], "live"):
        b = Broadcast(name="Theirs", status="draft")
        db.session.add(b)
        db.session.commit()
        other_id = b.id
    assert user.get(f"/broadcasts/{other_id}").status_code == 404
    assert user.get(f"/broadcasts/{other_id}/stats").status_code == 404
