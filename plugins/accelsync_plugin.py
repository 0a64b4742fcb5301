"""Airflow plugin: accelsync's sync report pages in the Airflow UI.

- a FastAPI app at `/accelsync` (pages and the Data Docs site; see `accelsync.report.pages`);
- a "Sync reports" entry in the Browse menu, and a "Sync report" tab on every DAG's page
  (for accelsync DAGs it shows the sync's runs).

Put this folder in Airflow's `plugins_folder` (AIRFLOW__CORE__PLUGINS_FOLDER) and restart the
API server.
"""

from airflow.plugins_manager import AirflowPlugin

from accelsync.report.pages import create_app


class AccelsyncPlugin(AirflowPlugin):
    name = "accelsync"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/accelsync", "name": "accelsync sync reports"}]
    external_views = [
        {"name": "Sync reports", "href": "accelsync/", "destination": "nav", "category": "browse",
         "url_route": "accelsync"},
        {"name": "Sync report", "href": "accelsync/syncs/{DAG_ID}", "destination": "dag",
         "url_route": "accelsync_sync"},
    ]
