"""Web-only Flask extensions, created unbound and attached to the app in ``create_app`` (the
database ones every process shares live in ``core.database``)."""

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

login_manager = LoginManager()
csrf = CSRFProtect()


# Limits are declared on the views; storage and switches come from the settings in create_app.
limiter = Limiter(key_func=get_remote_address)
