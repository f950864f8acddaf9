/**
 * Where the dashboard lives: the page, its files and its data. Apart from dashboardAssets.ts,
 * which serves the files and holds their text (uPlot's among them), so that the routes can be set
 * at start and the files loaded at the first request for one (docs/performance.md → Idle RSS).
 */

/** The page's own address; its files live under it. */
export const DASHBOARD_PATH = "/dashboard";
/** Where the page polls its data (served by dashboardData.ts). */
export const DASHBOARD_DATA_PATH = "/dashboard/data";

/** Every path `dashboardAssetResponse` answers (the page and its files), for route tables. */
export const DASHBOARD_ASSET_PATHS: readonly string[] = [
  DASHBOARD_PATH,
  `${DASHBOARD_PATH}/dashboard.css`,
  `${DASHBOARD_PATH}/dashboard.js`,
  `${DASHBOARD_PATH}/uPlot.min.css`,
  `${DASHBOARD_PATH}/uPlot.iife.min.js`,
];
