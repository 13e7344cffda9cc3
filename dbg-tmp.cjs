const Database = require('better-sqlite3');
const db = new Database(':memory:');
console.log('version', db.prepare('select sqlite_version() v').get().v);
console.log('set', db.pragma('hard_heap_limit = 100000000'), db.pragma('hard_heap_limit', { simple: true }));
console.log(db.prepare("select * from pragma_compile_options where compile_options like '%MEMSTATUS%'").all());
try { const t = Date.now(); console.log(db.prepare('select length(a)+length(b)+length(c) n from (select randomblob(400000000) a, randomblob(400000000) b, randomblob(400000000) c)').get(), Date.now() - t); } catch (e) { console.log('err', e.code, e.message); }
console.log('rss MB', process.memoryUsage().rss >> 20);
