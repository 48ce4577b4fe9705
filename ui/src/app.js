// Entry point of the signed-in screens.
import { readJson, setup } from './util.js';
import { initShell } from './shell.js';
import { Board } from './board.js';
import { connectLive } from './live.js';

const page = readJson('page-data');
setup({ catalogue: readJson('i18n'), csrf: page?.csrf, lang: page?.lang });
initShell();
if (page?.board) {
  const board = new Board(page);
  window.akisBoard = board; // for the browser tests and the console
  window.akisLive = connectLive(board);
}
