"""Forms shared by several blueprints."""
from flask_wtf import FlaskForm


class ActionForm(FlaskForm):
    """A button that changes something: only its CSRF token."""
