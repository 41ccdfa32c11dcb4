"""Azure Functions wiring only: each trigger hands its input to one entry point in `connector`."""

from collections.abc import Callable

import azure.functions as func

from connector.app.functions import entrypoints, warmup
from connector.app.root import registry

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

# One webhook per registered source (connector/app/root/registry.py): the function is named as
# the source, on its route, with a function key; all methods reach the code (405 with a body).
Webhook = Callable[[func.HttpRequest], func.HttpResponse]
WEBHOOKS: dict[str, Webhook] = {}
for _source in registry.SOURCES:
    _webhook = entrypoints.webhook(_source.name)
    _webhook.__doc__ = _source.doc
    _route = app.route(route=_source.route, auth_level=func.AuthLevel.FUNCTION)
    WEBHOOKS[_source.name] = app.function_name(_source.name)(_route(_webhook))


def __getattr__(name: str) -> Webhook:
    """`function_app.flux`, `function_app.argocd`: a registered source's webhook, by its name."""
    try:
        return WEBHOOKS[name]
    except KeyError:
        raise AttributeError(name) from None


@app.function_name("health")
@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return entrypoints.health(req)


@app.function_name("process")
@app.service_bus_queue_trigger(
    arg_name="msg",
    queue_name="%SERVICEBUS_QUEUE%",
    connection="ServiceBusConnection",
    is_sessions_enabled=True,
)
def process(msg: func.ServiceBusMessage) -> None:
    entrypoints.process(msg)


@app.function_name("gates")
@app.route(route="gates", auth_level=entrypoints.pipeline_auth_level())
def gates(req: func.HttpRequest) -> func.HttpResponse:
    """Agentless pipeline tasks (callback mode) register the gate they wait on."""
    return entrypoints.gates(req)


@app.function_name("devops_events")
@app.route(route="devops/events", auth_level=func.AuthLevel.FUNCTION)
def devops_events(req: func.HttpRequest) -> func.HttpResponse:
    """Azure DevOps service hook: pull request updated (abandoned → fail its gates)."""
    return entrypoints.devops_events(req)


@app.function_name("deployments")
@app.route(
    route="deployments/{commit}", methods=["GET"], auth_level=entrypoints.pipeline_auth_level()
)
def deployments(req: func.HttpRequest) -> func.HttpResponse:
    """Read-only view of one commit's deployment (JSON; HTML with ?format=html)."""
    return entrypoints.deployments(req)


@app.function_name("ui")
@app.route(route="ui/{commit?}", methods=["GET"], auth_level=entrypoints.pipeline_auth_level())
def ui(req: func.HttpRequest) -> func.HttpResponse:
    """On-call pages: every environment (/api/ui), one commit (/api/ui/{commit})."""
    return entrypoints.ui(req)


@app.function_name("doctor")
@app.route(route="doctor", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def doctor(req: func.HttpRequest) -> func.HttpResponse:
    """Checks every dependency with the app's own settings and identity (master key only)."""
    return entrypoints.doctor(req)


@app.function_name("sweep")
@app.timer_trigger(arg_name="timer", schedule="0 */5 * * * *", run_on_startup=False)
def sweep(timer: func.TimerRequest) -> None:
    """Fail timed-out gates, catch abandoned PRs the hook missed, retry stuck completions."""
    entrypoints.sweep(timer)


@app.function_name("cleanup")
@app.timer_trigger(arg_name="timer", schedule="0 30 2 * * *", run_on_startup=False)
def cleanup(timer: func.TimerRequest) -> None:
    """Daily: delete state older than STATE_RETENTION_DAYS (connector/storage/retention.py)."""
    entrypoints.cleanup(timer)


# Imports only (no settings read, nothing connected): takes the deferred imports off the first
# `/api/flux` and queue message; see connector/app/functions/warmup.py.
warm_up = warmup.start()
