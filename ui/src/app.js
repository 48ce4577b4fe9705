// Entry point of the signed-in screens: the shell, the live connection, then the screen
// named by the page (`screen` in #page-data, set by engine/src/ui).
import { readJson, setup } from './util.js';
import { initShell } from './shell.js';
import { Board } from './board.js';
import { connectLive } from './live.js';
import { initNotifications } from './notifications.js';
import { CustomerViewer } from './customer.js';
import { CustomersScreen } from './customers.js';
import { AgendaScreen } from './agenda.js';
import { WorkOrdersScreen, WorkOrderScreen } from './work_orders.js';
import { AdminScreen } from './admin.js';

const page = readJson('page-data');
setup({ catalogue: readJson('i18n'), csrf: page?.csrf, lang: page?.lang, timezone: page?.timezone });
initShell(page);
const live = connectLive();
initNotifications(live);
window.akisLive = live; // for the browser tests and the console
const root = document.getElementById('screen-root');
const screens = {
  customers: () => new CustomersScreen(page, root, live),
  customer: () => CustomerViewer.page(page, root, live),
  agenda: () => new AgendaScreen(page, root, live),
  work_orders: () => new WorkOrdersScreen(page, root, live),
  work_order: () => new WorkOrderScreen(page, root, live),
  admin: () => new AdminScreen(page, root, live),
};
if (page?.screen === 'board') {
  const board = new Board(page, live);
  window.akisBoard = board;
} else if (screens[page?.screen]) {
  window.akisScreen = screens[page.screen]();
}
