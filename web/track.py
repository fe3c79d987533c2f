"""Public tracking: reference number plus national ID (or mobile), by POST only (nothing personal in
URLs or logs). A wrong pair and an unknown reference get the very same answer."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from tawasul import tracking
from web import db_of, limiter, public_limit, reference_limit
from web.ratelimits import reference_key

bp = Blueprint("track", __name__, url_prefix="/track")


class TrackForm(FlaskForm):
    reference = StringField(_l("Reference number"), validators=[DataRequired(), Length(max=40)])
    identity = StringField(_l("National ID or iqama number, or mobile number"),
                           validators=[DataRequired(), Length(max=40)])


@bp.route("/", methods=["GET", "POST"])
@limiter.limit(public_limit, methods=["POST"])
@limiter.shared_limit(reference_limit, scope="tracking-reference", key_func=reference_key, methods=["POST"])
def index():
    form = TrackForm()
    if form.validate_on_submit():
        with db_of(current_app).read() as session:
            found = tracking.lookup(session, form.reference.data, form.identity.data)
        if found is None:
            # The same bytes whatever was wrong: no form echo, no token, nothing that varies.
            return render_template("track/not_found.html"), 404
        return render_template("track/result.html", found=found)
    return render_template("track/form.html", form=form), 400 if form.is_submitted() else 200
