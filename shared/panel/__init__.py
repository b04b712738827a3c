"""The admin panel both networks serve at `/admin` (DESIGN.md §12, docs/PANEL.md).

Server-rendered pages (Jinja2, autoescaped) over the same service functions the admin API
calls, with htmx for live refresh and charts drawn as SVG on the server; every file it loads
comes from `static/`. Network-independent parts live here: sessions (`sessions`), CSRF
(`csrf`), role gating (`access`), the login (`login`) and who may sign in (`accounts`),
rendering and answers (`core`), lists (`paging`), charts (`charts`), the pages both networks
serve over their own parts (batches, quarantine, queues, alerts and notifications, the user
list, the dashboard's routes, the settings table), the application mounted at `/admin`
(`app`) and a network's panel put together (`network.install`). Each network adds its own
pages.
"""
