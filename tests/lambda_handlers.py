"""Lambda handlers of the test project (``runwsgateway --lambda tests.lambda_handlers.open_handler``)."""

from django_aws_api_gateway_websockets.aws_lambda import make_handler

#: Events through OpenView (no token): a public ticker's function.
open_handler = make_handler(view_path="/open/")
