/**
 * Storage classifications: a name (Gold, Silver...) given to a host's replica storage location; a
 * storage mapping in the vault maps a primary classification to a recovery one. Only a location the
 * host has reported can be classified (a typo would otherwise classify nothing, silently).
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Database } from '../../persistence/database.js';
import type { StorageLocationView } from './fabric-api.schema.js';
import { list, unknownName } from './fabric-errors.js';
import { readFabric } from './fabric-reader.js';
import { fabricWrite } from './fabric-transaction.js';
import { storageLocationViews } from './fabric-views.js';

export class StorageClassificationsService {
  constructor(private readonly db: Database) {}

  async list(): Promise<StorageLocationView[]> {
    return storageLocationViews(await readFabric(this.db));
  }

  /** Classifies the location (null: no classification); answers the location as it is now. */
  async classify(
    hostId: string,
    location: string,
    classification: string | null,
  ): Promise<StorageLocationView> {
    await fabricWrite(this.db, async (tx) => {
      const rows = await readFabric(tx);
      const host = rows.hosts.find((h) => h.hostId === hostId);
      if (!host) throw unknownName('host', hostId, 'secondsite manager host list');
      const reported = host.inventory?.storageLocations.map((s) => s.name) ?? [];
      const known = rows.storageClassifications.some((c) => c.hostId === hostId && c.location === location);
      if (!reported.includes(location) && !(classification === null && known)) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_NOT_FOUND',
          host.inventory === null
            ? `host ${hostId} has not reported its storage locations yet; wait for its first inventory read ('secondsite manager host refresh') and try again`
            : `host ${hostId} has no storage location ${location}; it reports ${list(reported)}`,
          { hostId, location, reported },
        );
      }
      if (classification === null) {
        await tx.query('DELETE FROM storage_classifications WHERE host_id = $1 AND location = $2', [
          hostId,
          location,
        ]);
      } else {
        await tx.query(
          `INSERT INTO storage_classifications (host_id, location, classification) VALUES ($1, $2, $3)
           ON CONFLICT (host_id, location) DO UPDATE SET classification = excluded.classification
           WHERE storage_classifications.classification IS DISTINCT FROM excluded.classification`,
          [hostId, location, classification],
        );
      }
    });
    const view = (await this.list()).find((v) => v.hostId === hostId && v.location === location);
    return view ?? { hostId, location, classification: null, capacityBytes: null, freeBytes: null };
  }
}
